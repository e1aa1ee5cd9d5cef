// What the website uses of spessasynth_lib: bundled by build.sh (esbuild) into
// webapp/static/vendor/spessasynth/spessasynth_lib.min.js, one ES module with
// spessasynth_core inside it.
export { WorkletSynthesizer, Sequencer } from "spessasynth_lib";
