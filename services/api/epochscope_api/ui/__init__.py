"""The web UI: static files (HTML, CSS, JS modules, no build step) served by the API itself."""
