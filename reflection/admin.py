"""Admin registrations of reflection live with their domains; importing them registers them."""
from reflection.analysis import admin as analysis_admin
from reflection.experiments import admin as experiments_admin
from reflection.logs import admin as logs_admin
from reflection.suggestions import admin as suggestions_admin

__all__ = ["analysis_admin", "experiments_admin", "logs_admin", "suggestions_admin"]
