"""Synthetic training and evaluation data for the bundled ``mt3_small`` model.

* :mod:`synth.material` — musical random note material (scales, chords,
  arpeggios, repeated notes, melodies with rests, pads, drum grooves) over GM
  programs, on the 10 ms grid of the MT3 codec, deterministic from a seed;
* :mod:`synth.render` — FluidSynth rendering to 16 kHz mono with random gain,
  reverb/chorus, EQ and a little noise;
* :mod:`synth.tokens` — exact notes -> MT3 token streams per segment (the
  inverse of the C decoder's ``mt3_pytorch`` scheme);
* :mod:`synth.dataset` — the command that writes training shards.

Nothing is downloaded: FluidSynth and the soundfonts come from Debian
(``fluidsynth fluid-soundfont-gm timgm6mb-soundfont
musescore-general-soundfont-small``).
"""
