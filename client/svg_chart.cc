#include "client/svg_chart.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coldcompress::client {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Label(double v) {
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    return absl::StrFormat("%.2g", v);
  return absl::StrFormat("%g", std::round(v * 1e6) / 1e6);
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int count) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, count);
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 0.5; t += step)
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  if (ticks.back() < hi) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string RenderSvg(const Chart& chart) {
  const int left = 80, right = 200, top = 50, bottom = 60;
  const int plot_w = chart.width - left - right;
  const int plot_h = chart.height - top - bottom;
  double x_lo = 1e300, x_hi = -1e300, y_lo = 1e300, y_hi = -1e300;
  for (const ChartSeries& s : chart.series) {
    for (const auto& [x, y] : s.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  if (x_lo > x_hi) x_lo = x_hi = y_lo = y_hi = 0;
  const std::vector<double> xt = NiceTicks(x_lo, x_hi, 6);
  const std::vector<double> yt = NiceTicks(std::min(0.0, y_lo), y_hi, 6);
  const double x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) {
    return top + plot_h - (y - y0) / (y1 - y0) * plot_h;
  };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      chart.width, chart.height, chart.width, chart.height);
  absl::StrAppend(&svg,
                  absl::StrFormat("<text x=\"%d\" y=\"28\" font-size=\"16\" "
                                  "text-anchor=\"middle\">%s</text>\n",
                                  left + plot_w / 2, Escape(chart.title)));
  for (double t : xt) {
    absl::StrAppend(
        &svg,
        absl::StrFormat(
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
            "stroke=\"#ddd\"/>\n"
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
            px(t), top, px(t), top + plot_h, px(t), top + plot_h + 18,
            Label(t)));
  }
  for (double t : yt) {
    absl::StrAppend(
        &svg,
        absl::StrFormat(
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
            "stroke=\"#ddd\"/>\n"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
            left, py(t), left + plot_w, py(t), left - 6, py(t) + 4, Label(t)));
  }
  absl::StrAppend(
      &svg,
      absl::StrFormat(
          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
          "stroke=\"black\"/>\n"
          "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n"
          "<text transform=\"translate(18,%d) rotate(-90)\" "
          "text-anchor=\"middle\">%s</text>\n",
          left, top, plot_w, plot_h, left + plot_w / 2, chart.height - 15,
          Escape(chart.x_label), top + plot_h / 2, Escape(chart.y_label)));
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const ChartSeries& s = chart.series[i];
    const char* color = kColors[i % std::size(kColors)];
    std::vector<std::pair<double, double>> points = s.points;
    std::sort(points.begin(), points.end());
    std::string path;
    for (const auto& [x, y] : points)
      absl::StrAppend(&path, path.empty() ? "" : " ",
                      absl::StrFormat("%.1f,%.1f", px(x), py(y)));
    absl::StrAppend(
        &svg, absl::StrFormat(
                  "<polyline class=\"series\" data-name=\"%s\" points=\"%s\" "
                  "fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                  Escape(s.name), path, color));
    for (const auto& [x, y] : points) {
      absl::StrAppend(
          &svg, absl::StrFormat(
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                    px(x), py(y), color));
    }
    const int ly = top + 10 + static_cast<int>(i) * 20;
    absl::StrAppend(
        &svg, absl::StrFormat(
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                  "stroke-width=\"2\"/>\n<text x=\"%d\" y=\"%d\">%s</text>\n",
                  left + plot_w + 15, ly, left + plot_w + 40, ly, color,
                  left + plot_w + 46, ly + 4, Escape(s.name)));
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

}  // namespace coldcompress::client
