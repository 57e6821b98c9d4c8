"""The app's database: people and their links, answers, pools, leases, labels, agreement.

SQLAlchemy 2.x on SQLite (the default) or PostgreSQL (several processes); the schema is
Alembic's migrations. Plain functions over a `Store`, which take and return plain
values. May import: SQLAlchemy, Alembic, the database drivers, numpy (the label-quality
statistics), and itself; never pandas or the statistics packages the tests compare with,
nor Tornado, widgets, `runtime.host`, `runtime.app` or `runtime.server`.
"""
