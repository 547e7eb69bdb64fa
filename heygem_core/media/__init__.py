"""Media in and out through the bundled ffmpeg: `ffmpeg` (the binary and its words), `probe`,
`reader` (streaming frames, the ping-pong schedule), `writer` (H.264 + AAC) and `audio` (decoding,
the Wav2Lip mel spectrogram, speech features). Nothing is imported here, so that probing a file
does not load OpenCV."""
