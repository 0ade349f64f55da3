"""Blueprints by area: storefront (customers), manage (catalog management), health."""
