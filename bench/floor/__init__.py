"""The benchmark's floor: a bare Django+DRF endpoint that validates a small JSON body and inserts
one row (bench/floor/settings.py says what "bare" means). `make bench` serves it with the
product's gunicorn configuration and quotes the product's intake as a ratio of it."""
