"""Input devices: finding evdev keypads and jog wheels, hot-plug, recorded replays and key names."""
