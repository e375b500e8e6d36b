"""Alembic environment: runs revisions against the Flask app's database."""

from alembic import context
from flask import current_app

config = context.config
_db = current_app.extensions["migrate"].db
config.set_main_option("sqlalchemy.url", _db.engine.url.render_as_string(hide_password=False)
                       .replace("%", "%%"))


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``idp db upgrade --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=_db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run revisions in one transaction on the app's engine."""
    conf_args = dict(current_app.extensions["migrate"].configure_args)
    with _db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=_db.metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
