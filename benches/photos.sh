#!/usr/bin/env bash
# The photo sets the end-to-end benchmark (benches/load.py) uploads, built from Debian's
# mate-backgrounds wallpapers (real photos, 1.9 to 5 MP JPEGs) into benches/photos/:
#   nature/  the 12 JPEGs of mate-backgrounds' nature/ as they are
#   wide/    formats and sizes beyond them, made from those photos with Pillow: JPEGs of 12 and
#            17.9 MP (a photo resized up, then saved at quality 90, as a camera saves), a JPEG
#            with an EXIF orientation to apply, PNGs with and without alpha, and lossy WebPs
# Needs mate-backgrounds (scripts/install-deps test) and Pillow (python3 -m pip install pillow).
set -euo pipefail
cd "$(dirname "$0")"
src=/usr/share/backgrounds/mate/nature
[[ -d $src ]] || { echo "missing $src: apt-get install mate-backgrounds" >&2; exit 1; }
python3 -c 'import PIL' 2>/dev/null || { echo "needs Pillow: python3 -m pip install pillow" >&2; exit 1; }

mkdir -p photos/nature photos/wide
cp "$src"/*.jpg photos/nature/
python3 - "$src" photos/wide <<'EOF'
import sys
from pathlib import Path
from PIL import Image, ImageDraw, ImageFilter

src, out = Path(sys.argv[1]), Path(sys.argv[2])
photo = lambda name: Image.open(src / name).convert("RGB")

# Large JPEGs: a phone's 12 MP and a camera's 17.9 MP (5184 x 3456).
for name, size in [("Storm.jpg", (4000, 3000)), ("TwoWings.jpg", (4000, 3000)),
                   ("Dune.jpg", (5184, 3456)), ("RainDrops.jpg", (5184, 3456))]:
    photo(name).resize(size, Image.LANCZOS).save(out / f"{size[0]}x{size[1]}-{name}", quality=90)
# Smaller JPEGs as they come, and one turned on its side by EXIF (orientation 6).
for name in ["Wood.jpg", "LadyBird.jpg"]:
    photo(name).save(out / name, quality=90)
exif = Image.Exif()
exif[0x0112] = 6
photo("Garden.jpg").save(out / "rotated-Garden.jpg", quality=90, exif=exif)
# PNG without alpha, and with it: a soft-edged oval cut out of the photo.
for name in ["Blinds.jpg", "YellowFlower.jpg"]:
    photo(name).save(out / name.replace(".jpg", ".png"))
for name in ["LadyBird.jpg", "FreshFlower.jpg"]:
    image = photo(name)
    mask = Image.new("L", image.size, 0)
    w, h = image.size
    ImageDraw.Draw(mask).ellipse((w // 8, h // 8, w * 7 // 8, h * 7 // 8), fill=255)
    image.putalpha(mask.filter(ImageFilter.GaussianBlur(24)))
    image.save(out / name.replace(".jpg", "-alpha.png"))
# Lossy WebP, as a browser or an Android phone saves it.
for name in ["Aqua.jpg", "GreenMeadow.jpg"]:
    photo(name).save(out / name.replace(".jpg", ".webp"), quality=90)
EOF
ls -la photos/wide
