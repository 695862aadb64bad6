// Word lists for generated tasks: common English nouns, adjectives and verbs,
// written for this project (lowercase, distinct within each list).
#include "client/tasks/words.h"

#include <string_view>

namespace coldcompress::client {
namespace {

constexpr std::string_view kNouns[] = {
    "apple",    "river",   "mountain",   "window",   "garden",   "teacher",
    "doctor",   "pencil",  "bottle",     "basket",   "candle",   "castle",
    "forest",   "island",  "ladder",     "mirror",   "needle",   "orange",
    "pillow",   "rabbit",  "saddle",     "tiger",    "tunnel",   "violin",
    "wagon",    "zebra",   "anchor",     "bakery",   "barrel",   "blanket",
    "bridge",   "bucket",  "cabin",      "camera",   "canyon",   "carpet",
    "cattle",   "cellar",  "chimney",    "circus",   "cloud",    "coffee",
    "collar",   "comet",   "copper",     "cotton",   "cradle",   "crystal",
    "curtain",  "daisy",   "desert",     "diamond",  "dolphin",  "dragon",
    "drawer",   "eagle",   "engine",     "falcon",   "feather",  "fence",
    "fiddle",   "finger",  "flame",      "flower",   "fountain", "frog",
    "galaxy",   "ginger",  "glacier",    "goat",     "gravel",   "guitar",
    "hammer",   "harbor",  "helmet",     "hill",     "honey",    "horizon",
    "jacket",   "jelly",   "jungle",     "kettle",   "kitten",   "lantern",
    "lemon",    "library", "lizard",     "locket",   "magnet",   "maple",
    "marble",   "meadow",  "melon",      "meteor",   "monkey",   "moon",
    "muffin",   "museum",  "napkin",     "nest",     "ocean",    "olive",
    "onion",    "orchard", "otter",      "owl",      "oyster",   "paddle",
    "palace",   "panda",   "parrot",     "peach",    "pebble",   "pepper",
    "piano",    "pigeon",  "pirate",     "planet",   "pocket",   "pond",
    "potato",   "puzzle",  "quarry",     "quilt",    "radio",    "raven",
    "ribbon",   "rocket",  "saddlebag",  "salmon",   "sandal",   "satchel",
    "scarf",    "shadow",  "shelf",      "shovel",   "silver",   "sketch",
    "sparrow",  "spider",  "spoon",      "squirrel", "statue",   "stone",
    "storm",    "sugar",   "summer",     "sunset",   "swan",     "sweater",
    "table",    "teapot",  "temple",     "thunder",  "ticket",   "timber",
    "tomato",   "tower",   "tractor",    "trumpet",  "tulip",    "turtle",
    "umbrella", "valley",  "velvet",     "village",  "vine",     "walnut",
    "walrus",   "wheat",   "whistle",    "willow",   "winter",   "wizard",
    "wolf",     "yacht",   "yarn",       "acorn",    "album",    "arrow",
    "atlas",    "badge",   "ballet",     "banner",   "beacon",   "beetle",
    "biscuit",  "blossom", "boulder",    "bracelet", "breeze",   "brook",
    "buffalo",  "butter",  "button",     "cactus",   "canal",    "canoe",
    "cargo",    "carrot",  "cedar",      "chalk",    "cherry",   "chess",
    "cider",    "clover",  "cobalt",     "compass",  "coral",    "cricket",
    "crown",    "cup",     "dagger",     "dawn",     "denim",    "dune",
    "easel",    "ember",   "fabric",     "fern",     "ferry",    "flute",
    "fossil",   "garnet",  "glove",      "granite",  "grape",    "harp",
    "hawk",     "hazel",   "heron",      "hive",     "hornet",   "iris",
    "ivory",    "jasmine", "kayak",      "kiwi",     "lagoon",   "lark",
    "lemonade", "lily",    "linen",      "lotus",    "mango",    "mantle",
    "marsh",    "mast",    "meadowlark", "mint",     "mitten",   "moss",
    "mule",     "nectar",  "nutmeg",     "oak",      "oasis",    "opal",
    "orbit",    "oven",    "paddock",    "parcel",   "pearl",    "pelican",
    "pine",     "plum",    "poppy",      "prairie",  "quartz",   "raft",
    "rain",     "reed",    "ridge",      "robin",    "rose",     "ruby",
    "saffron",  "sage",    "sapphire",   "scroll",   "seal",     "shell",
    "shore",    "slate",   "snow",       "sonnet",   "spice",    "spruce",
    "star",     "stream",  "summit",     "swallow",  "thistle",  "thread",
    "tide",     "topaz",   "torch",      "trail",    "trout",    "twig",
    "vase",     "vessel",  "wand",       "wave",     "whale",    "wren",
};

constexpr std::string_view kAdjectives[] = {
    "able",    "angry",   "ancient",  "bold",    "brave",  "bright",  "broad",
    "calm",    "careful", "cheerful", "clever",  "cold",   "cool",    "crisp",
    "curious", "damp",    "dark",     "deep",    "eager",  "early",   "easy",
    "elegant", "empty",   "fair",     "famous",  "fancy",  "fast",    "fierce",
    "flat",    "fresh",   "friendly", "gentle",  "giant",  "glad",    "golden",
    "grand",   "great",   "green",    "happy",   "hard",   "heavy",   "hidden",
    "high",    "hollow",  "honest",   "huge",    "humble", "icy",     "jolly",
    "keen",    "kind",    "large",    "late",    "lazy",   "light",   "little",
    "lively",  "lonely",  "long",     "loud",    "lucky",  "mellow",  "mighty",
    "modern",  "narrow",  "neat",     "new",     "nice",   "noble",   "odd",
    "old",     "open",    "pale",     "patient", "plain",  "polite",  "poor",
    "proud",   "purple",  "quick",    "quiet",   "rapid",  "rare",    "ready",
    "rich",    "rough",   "round",    "royal",   "rusty",  "sad",     "safe",
    "salty",   "sharp",   "shiny",    "short",   "shy",    "silent",  "silly",
    "simple",  "slow",    "small",    "smooth",  "soft",   "solid",   "sour",
    "spare",   "spicy",   "square",   "steady",  "steep",  "stiff",   "still",
    "strange", "strong",  "sunny",    "sweet",   "swift",  "tall",    "tame",
    "tender",  "thick",   "thin",     "tidy",    "tiny",   "tough",   "true",
    "vast",    "warm",    "weak",     "wide",    "wild",   "wise",    "witty",
    "young",   "zany",    "amber",    "azure",   "brisk",  "candid",  "dusty",
    "fluffy",  "frosty",  "gloomy",   "hasty",   "misty",  "muddy",   "nimble",
    "plucky",  "rustic",  "snowy",    "stormy",  "sturdy", "velvety", "windy",
    "woolly",
};

constexpr std::string_view kVerbs[] = {
    "accept",  "admire",    "allow",    "answer",   "appear",    "arrive",
    "attack",  "balance",   "behave",   "borrow",   "breathe",   "bring",
    "build",   "calculate", "carry",    "catch",    "celebrate", "change",
    "chase",   "choose",    "climb",    "collect",  "compare",   "complain",
    "connect", "consider",  "cook",     "count",    "cover",     "crawl",
    "create",  "cross",     "dance",    "decide",   "deliver",   "describe",
    "design",  "discover",  "divide",   "dream",    "drift",     "drink",
    "drive",   "earn",      "enjoy",    "escape",   "examine",   "explain",
    "explore", "fasten",    "fetch",    "fill",     "find",      "fix",
    "float",   "fold",      "follow",   "forgive",  "gather",    "gaze",
    "glide",   "govern",    "grab",     "grow",     "guard",     "guess",
    "hang",    "harvest",   "heal",     "hear",     "help",      "hide",
    "hold",    "hover",     "hunt",     "imagine",  "improve",   "invent",
    "invite",  "join",      "juggle",   "jump",     "kick",      "kneel",
    "knit",    "knock",     "laugh",    "launch",   "lead",      "learn",
    "lend",    "lift",      "listen",   "look",     "manage",    "march",
    "measure", "melt",      "mend",     "migrate",  "mix",       "move",
    "notice",  "observe",   "obtain",   "offer",    "open",      "order",
    "paint",   "pause",     "perform",  "pick",     "plant",     "play",
    "polish",  "pour",      "praise",   "prepare",  "print",     "promise",
    "protect", "pull",      "push",     "question", "race",      "reach",
    "read",    "relax",     "remember", "repair",   "report",    "rescue",
    "rest",    "return",    "ride",     "ring",     "roam",      "roll",
    "rush",    "sail",      "scatter",  "scrub",    "search",    "sew",
    "shake",   "share",     "shine",    "shout",    "sing",      "sketch",
    "skip",    "sleep",     "smile",    "sneeze",   "sort",      "speak",
    "spin",    "splash",    "spread",   "squeeze",  "stamp",     "stand",
    "start",   "stay",      "steer",    "stir",     "stretch",   "study",
    "swim",    "swing",     "teach",    "tickle",   "travel",    "trust",
    "tumble",  "twist",     "unlock",   "visit",    "wade",      "wait",
    "walk",    "wander",    "wash",     "watch",    "weave",     "whisper",
    "wink",    "wish",      "wonder",   "worry",    "wrap",      "write",
    "yawn",    "yell",
};

template <size_t N>
std::vector<std::string> ToVector(const std::string_view (&words)[N]) {
  return std::vector<std::string>(words, words + N);
}

}  // namespace

const std::vector<std::string>& Nouns() {
  static const auto* words = new std::vector<std::string>(ToVector(kNouns));
  return *words;
}

const std::vector<std::string>& Adjectives() {
  static const auto* words =
      new std::vector<std::string>(ToVector(kAdjectives));
  return *words;
}

const std::vector<std::string>& EnglishWords() {
  static const auto* words = [] {
    auto* all = new std::vector<std::string>();
    for (const auto* list : {&Nouns(), &Adjectives()})
      all->insert(all->end(), list->begin(), list->end());
    for (std::string_view v : kVerbs) {
      bool seen = false;
      for (const std::string& w : *all) seen = seen || w == v;
      if (!seen) all->emplace_back(v);
    }
    return all;
  }();
  return *words;
}

}  // namespace coldcompress::client
