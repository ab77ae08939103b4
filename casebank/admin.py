"""Admin registrations of the case bank live with their domains; importing them registers them."""
from casebank.access import admin as access_admin
from casebank.cases import admin as cases_admin

__all__ = ["access_admin", "cases_admin"]
