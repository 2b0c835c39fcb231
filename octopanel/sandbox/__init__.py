"""A local OctoPrint with its Virtual Printer, for the demo and the tests only: the daemon never imports it."""
