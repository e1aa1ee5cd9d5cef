"""What people and programs talk to: the HTML pages (pages.py), the JSON API
(api.py) and its OpenAPI document (openapi.py), live job events (events.py),
errors as users see them (errors.py), request checking (validation.py) and
what a submission does (submit.py). Only this package imports Flask's
request machinery; it reaches the jobs and storage through webapp.services."""
