"""The daemon: the select loop, the one worker that runs printer commands in order, and the control socket."""
