"""The model flywheel: capture what matters on the line, review it at the station, export it
for labelling, run a candidate model in shadow and promote it (docs/quality-loop.md)."""
