"""OctoPrint's REST API: the client, its bounded request bodies and URLs, the printer state and the login."""
