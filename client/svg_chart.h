// Line charts as SVG files: one line (with markers) per series, axes with
// round ticks, a legend. Enough for score-vs-compression plots.
#ifndef COLDCOMPRESS_CLIENT_SVG_CHART_H_
#define COLDCOMPRESS_CLIENT_SVG_CHART_H_

#include <string>
#include <utility>
#include <vector>

namespace coldcompress::client {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // drawn in x order
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  int width = 800, height = 500;
};

// The chart as a standalone SVG document of width x height pixels.
std::string RenderSvg(const Chart& chart);

// Round tick values covering [lo, hi], about `count` of them.
std::vector<double> NiceTicks(double lo, double hi, int count);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_SVG_CHART_H_
