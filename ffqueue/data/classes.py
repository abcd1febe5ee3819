"""Which classes are convergent and which divergent: presets, class-list files, the 345 names.

The article picked its 10 convergent and 10 divergent QuickDraw categories by eye from the
average images of all 345 and never printed the lists.  ``QUICKDRAW_CONVERGENT`` and
``QUICKDRAW_DIVERGENT`` below are **our choice**, not the article's: simple geometric or
rigid objects that people draw the same way (their average images are sharp) against scenes,
animals and poses that people draw every which way (blurry averages).  The article's perceptron
weights show a bottle among its convergent classes, hence ``wine bottle``.  Re-rank real data
with ``ffqueue data rank --from DIR --auto`` and pass your own lists where they disagree.

A class-list file (JSON or YAML) is a mapping with two lists of 10 names::

    convergent: [circle, square, ...]
    divergent: [cat, dog, ...]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from ffqueue.data.doodles import CONVERGENT, DIVERGENT
from ffqueue.errors import DataError

CLASSES_PER_LIST = 10

# Sharp averages: outlines drawn with the same parts and proportions by nearly everyone.
QUICKDRAW_CONVERGENT: tuple[str, ...] = (
    "circle", "square", "triangle", "hexagon", "octagon", "stop sign", "envelope",
    "wine bottle", "ladder", "star",
)
# Blurry averages: scenes, activities and animals drawn in any pose, number and arrangement.
QUICKDRAW_DIVERGENT: tuple[str, ...] = (
    "animal migration", "yoga", "camouflage", "garden", "squiggle", "dragon", "scorpion",
    "bird", "dog", "cat",
)

PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "doodles": (CONVERGENT, DIVERGENT),
    "quickdraw": (QUICKDRAW_CONVERGENT, QUICKDRAW_DIVERGENT),
}

# The 345 categories of Google's QuickDraw data set, as its files are named (<name>.npy).
QUICKDRAW_CATEGORIES: tuple[str, ...] = (
    "aircraft carrier", "airplane", "alarm clock", "ambulance", "angel", "animal migration", "ant",
    "anvil", "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage", "barn",
    "baseball", "baseball bat", "basket", "basketball", "bat", "bathtub", "beach", "bear", "beard",
    "bed", "bee", "belt", "bench", "bicycle", "binoculars", "bird", "birthday cake", "blackberry",
    "blueberry", "book", "boomerang", "bottlecap", "bowtie", "bracelet", "brain", "bread",
    "bridge", "broccoli", "broom", "bucket", "bulldozer", "bus", "bush", "butterfly", "cactus",
    "cake", "calculator", "calendar", "camel", "camera", "camouflage", "campfire", "candle",
    "cannon", "canoe", "car", "carrot", "castle", "cat", "ceiling fan", "cell phone", "cello",
    "chair", "chandelier", "church", "circle", "clarinet", "clock", "cloud", "coffee cup",
    "compass", "computer", "cookie", "cooler", "couch", "cow", "crab", "crayon", "crocodile",
    "crown", "cruise ship", "cup", "diamond", "dishwasher", "diving board", "dog", "dolphin",
    "donut", "door", "dragon", "dresser", "drill", "drums", "duck", "dumbbell", "ear", "elbow",
    "elephant", "envelope", "eraser", "eye", "eyeglasses", "face", "fan", "feather", "fence",
    "finger", "fire hydrant", "fireplace", "firetruck", "fish", "flamingo", "flashlight",
    "flip flops", "floor lamp", "flower", "flying saucer", "foot", "fork", "frog", "frying pan",
    "garden", "garden hose", "giraffe", "goatee", "golf club", "grapes", "grass", "guitar",
    "hamburger", "hammer", "hand", "harp", "hat", "headphones", "hedgehog", "helicopter", "helmet",
    "hexagon", "hockey puck", "hockey stick", "horse", "hospital", "hot air balloon", "hot dog",
    "hot tub", "hourglass", "house", "house plant", "hurricane", "ice cream", "jacket", "jail",
    "kangaroo", "key", "keyboard", "knee", "knife", "ladder", "lantern", "laptop", "leaf", "leg",
    "light bulb", "lighter", "lighthouse", "lightning", "line", "lion", "lipstick", "lobster",
    "lollipop", "mailbox", "map", "marker", "matches", "megaphone", "mermaid", "microphone",
    "microwave", "monkey", "moon", "mosquito", "motorbike", "mountain", "mouse", "moustache",
    "mouth", "mug", "mushroom", "nail", "necklace", "nose", "ocean", "octagon", "octopus", "onion",
    "oven", "owl", "paint can", "paintbrush", "palm tree", "panda", "pants", "paper clip",
    "parachute", "parrot", "passport", "peanut", "pear", "peas", "pencil", "penguin", "piano",
    "pickup truck", "picture frame", "pig", "pillow", "pineapple", "pizza", "pliers", "police car",
    "pond", "pool", "popsicle", "postcard", "potato", "power outlet", "purse", "rabbit", "raccoon",
    "radio", "rain", "rainbow", "rake", "remote control", "rhinoceros", "rifle", "river",
    "roller coaster", "rollerskates", "sailboat", "sandwich", "saw", "saxophone", "school bus",
    "scissors", "scorpion", "screwdriver", "sea turtle", "see saw", "shark", "sheep", "shoe",
    "shorts", "shovel", "sink", "skateboard", "skull", "skyscraper", "sleeping bag", "smiley face",
    "snail", "snake", "snorkel", "snowflake", "snowman", "soccer ball", "sock", "speedboat",
    "spider", "spoon", "spreadsheet", "square", "squiggle", "squirrel", "stairs", "star", "steak",
    "stereo", "stethoscope", "stitches", "stop sign", "stove", "strawberry", "streetlight",
    "string bean", "submarine", "suitcase", "sun", "swan", "sweater", "swing set", "sword",
    "syringe", "t-shirt", "table", "teapot", "teddy-bear", "telephone", "television",
    "tennis racquet", "tent", "The Eiffel Tower", "The Great Wall of China", "The Mona Lisa",
    "tiger", "toaster", "toe", "toilet", "tooth", "toothbrush", "toothpaste", "tornado", "tractor",
    "traffic light", "train", "tree", "triangle", "trombone", "truck", "trumpet", "umbrella",
    "underwear", "van", "vase", "violin", "washing machine", "watermelon", "waterslide", "whale",
    "wheel", "windmill", "wine bottle", "wine glass", "wristwatch", "yoga", "zebra", "zigzag",
)


def preset(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(convergent, divergent) of a named preset: "doodles" or "quickdraw"."""
    try:
        return PRESETS[name]
    except KeyError:
        raise DataError(f"unknown class preset {name!r} (known: {', '.join(PRESETS)})") from None


def detect_preset(categories: Iterable[str]) -> str | None:
    """The first preset whose 20 classes are all among `categories`, or None."""
    have = set(categories)
    for name, (conv, div) in PRESETS.items():
        if set(conv) | set(div) <= have:
            return name
    return None


def check_lists(convergent: Sequence[str], divergent: Sequence[str],
                where: str = "class lists") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate two lists of 10 distinct, non-empty names; return them as tuples."""
    for what, names in (("convergent", convergent), ("divergent", divergent)):
        if isinstance(names, str) or len(names) != CLASSES_PER_LIST:
            raise DataError(f"{where}: need exactly {CLASSES_PER_LIST} {what} classes, "
                            f"got {list(names) if not isinstance(names, str) else names!r}")
        if not all(isinstance(n, str) and n.strip() for n in names):
            raise DataError(f"{where}: {what} class names must be non-empty strings")
    both = [*convergent, *divergent]
    if len(set(both)) != len(both):
        twice = sorted({n for n in both if both.count(n) > 1})
        raise DataError(f"{where}: classes named more than once: {', '.join(twice)}")
    return tuple(convergent), tuple(divergent)


def parse_list(text: str) -> list[str]:
    """A comma-separated list of class names, as given on the command line."""
    return [part.strip() for part in text.split(",") if part.strip()]


def read_class_lists(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read a class-list file (JSON, or YAML for any other suffix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        raise DataError(f"class-list file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"class-list file {path} cannot be read: {problem}") from None
    if not isinstance(data, dict) or not {"convergent", "divergent"} <= set(data):
        raise DataError(f"class-list file {path} must map 'convergent' and 'divergent' to "
                        f"lists of {CLASSES_PER_LIST} names")
    conv, div = data["convergent"], data["divergent"]
    if not isinstance(conv, list) or not isinstance(div, list):
        raise DataError(f"class-list file {path}: 'convergent' and 'divergent' must be lists")
    return check_lists(conv, div, where=f"class-list file {path}")


def write_class_lists(path: Path, convergent: Sequence[str], divergent: Sequence[str]) -> Path:
    """Write a class-list file that `read_class_lists` (and ``data mixes --classes``) reads."""
    conv, div = check_lists(convergent, divergent)
    data = {"convergent": list(conv), "divergent": list(div)}
    path = Path(path)
    if path.suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
