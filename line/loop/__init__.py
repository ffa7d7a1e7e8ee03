"""The station loop: camera lanes, the part queue, cross-camera batching, the finisher, the
decision and the verdict records. Everything on the hot path of a part lives here."""
