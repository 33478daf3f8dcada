"""Append-only audit tables: the database itself refuses UPDATE and DELETE on them, so that no code path
(nor a person at a SQL prompt without owner rights to drop the trigger) rewrites the history."""

from django.db import migrations

APPEND_ONLY_TABLES = [
    "review_caseevent",
    "review_panelvote",
    "review_agreementresult",
    "annotation_annotationrevision",
]

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION medlabel_reject_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'append-only table %: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTION, params=None)
        for table in APPEND_ONLY_TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION medlabel_reject_change()"
            )
    elif vendor == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}: {operation} is not allowed'); END"
                )


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in APPEND_ONLY_TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            for operation in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS medlabel_reject_change()")


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0002_agreementresult_reviewpolicy_panelvote"),
        ("annotation", "0003_alter_case_status"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
