#!/usr/bin/env bash
# Rebuilds webapp/static/vendor/spessasynth/ from package-lock.json: the SF2
# synthesizer the job page plays pieces with (no CDN: the site serves it).
#   cd webapp/frontend && ./build.sh        (needs Node 18+ and npm)
# `npm ci` installs exactly the locked versions; esbuild bundles entry.js (the
# classes we use) with spessasynth_core into one ES module, and the AudioWorklet
# processor file is copied as the package ships it. Commit the result.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../static/vendor/spessasynth
rm -rf "$out"
mkdir -p "$out"
npx --no-install esbuild entry.js --bundle --format=esm --minify --legal-comments=none \
  --outfile="$out/spessasynth_lib.min.js"
cp node_modules/spessasynth_lib/dist/spessasynth_processor.min.js "$out/"
cp node_modules/spessasynth_lib/LICENSE "$out/LICENSE"
cp node_modules/spessasynth_core/LICENSE "$out/LICENSE-spessasynth_core"
cp node_modules/stb-vorbis/LICENSE "$out/LICENSE-stb-vorbis"
version() { node -p "require('./node_modules/$1/package.json').version"; }
cat > "$out/VERSION" <<END
spessasynth_lib $(version spessasynth_lib)
spessasynth_core $(version spessasynth_core)
stb-vorbis $(version stb-vorbis)
esbuild $(version esbuild) (bundler)
END
cat > "$out/README.md" <<END
# SpessaSynth, vendored

SF2 synthesizer for the job page's player (webapp/static/player.js), from npm:
[spessasynth_lib](https://github.com/spessasus/spessasynth_lib) with
[spessasynth_core](https://github.com/spessasus/spessasynth_core), Apache-2.0
(see LICENSE*). Versions: VERSION.

- spessasynth_lib.min.js: ES module exporting WorkletSynthesizer and Sequencer
  (webapp/frontend/entry.js bundled with esbuild).
- spessasynth_processor.min.js: the AudioWorklet processor, as published.

Do not edit these files. To rebuild them from the lockfile:
\`cd webapp/frontend && ./build.sh\` (Node 18+). To update, change the versions
in webapp/frontend/package.json, run \`npm install\` there, then ./build.sh.
END
ls -l "$out"
