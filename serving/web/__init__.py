"""Server-rendered web pages for inspectors and regulators (Jinja2 + inline SVG charts)."""
