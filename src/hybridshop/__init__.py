"""hybridshop: a hybrid-cloud (AWS + GCP) ecommerce data platform that also runs on one laptop.

Layout (each folder is one component of the original architecture):
- ``core``             business rules (catalog, purchase, validation); no HTTP, Lambda or Flask.
- ``db``               PostgreSQL: connections (DSN or RDS IAM), migrations, seed, embedded server.
- ``lambda_functions`` the AWS Lambda handlers (GetProducts, GetItem, AddProduct, bootstrap).
- ``gateway``          local stand-in for API Gateway (HTTP API, payload 2.0) + Lambda runtime.
- ``web``              the Flask shop that runs on Cloud Run.
- ``datastream``       local stand-in for GCP Datastream: pgoutput -> DuckDB in BigQuery layout.
- ``packaging``        builds the Lambda zips and the Cloud Run build context.
- ``cli``              the ``hybridshop`` command.
"""

__version__ = "0.1.0"
