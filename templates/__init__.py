"""nginx configuration templates (Jinja2), shipped inside the ingressctl package."""
