"""Cases and their versions: the model, every write (services), reads (selectors), the API and admin."""
