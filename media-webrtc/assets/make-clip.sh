#!/usr/bin/env bash
# Regenerates the looping test clip embedded by callapi-media-webrtc (src/clip.rs):
#   clip.ivf — VP8, 320x240, 30 fps, ~250 kbit/s, a keyframe every second (a moving test pattern)
#   clip.ogg — Opus, 48 kHz mono, 20 ms frames, one packet per Ogg page (a 440 Hz tone)
# Both last 3 s. The outputs are committed, so users and CI never need ffmpeg; this script only
# documents (and reproduces) how they were made. Needs ffmpeg with libvpx and libopus
# (Debian: apt-get install -y ffmpeg).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_LONG=3

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=320x240:rate=30:duration=${SECONDS_LONG}" \
  -c:v libvpx -b:v 250k -minrate 250k -maxrate 250k -g 30 -keyint_min 30 \
  -deadline realtime -cpu-used 8 -auto-alt-ref 0 -lag-in-frames 0 \
  -f ivf clip.ivf

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=${SECONDS_LONG}" \
  -c:a libopus -b:a 32k -ac 1 -frame_duration 20 -application audio \
  -page_duration 20000 \
  -f ogg clip.ogg

ls -l clip.ivf clip.ogg
