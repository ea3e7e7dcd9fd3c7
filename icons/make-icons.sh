#!/bin/sh
# Regenerates the app icon: a key on a rounded blue square, 8-bit RGBA (Tauri needs RGBA; no text,
# since ImageMagick's default font may be missing), then every size with the Tauri CLI.
set -eu
cd "$(dirname "$0")"
convert -size 512x512 xc:none \
  -fill '#2f6fde' -draw 'roundrectangle 16,16 495,495 96,96' \
  -fill white -draw 'circle 256,210 256,130' -draw 'rectangle 226,240 286,400' \
  -draw 'rectangle 286,330 346,360' -draw 'rectangle 286,380 336,400' \
  PNG32:icon.png
../tests/scripts/tauri-cli icon icon.png -o .
rm -rf android ios Square*Logo.png StoreLogo.png
touch ../src-tauri/tauri.conf.json   # icons alone don't trigger a rebuild
