"""The panel: raw events become gestures, the keymap maps them to action lines, the router queues them."""
