"""Append-only audit tables: the database itself refuses UPDATE and DELETE on them, so that no code path
(nor a person at a SQL prompt without owner rights to drop the trigger) rewrites the history."""

from django.db import migrations

from config.append_only import install_append_only, uninstall_append_only

APPEND_ONLY_TABLES = [
    "review_caseevent",
    "review_panelvote",
    "review_agreementresult",
    "annotation_annotationrevision",
]


def install(apps, schema_editor):
    install_append_only(schema_editor, APPEND_ONLY_TABLES)


def uninstall(apps, schema_editor):
    uninstall_append_only(schema_editor, APPEND_ONLY_TABLES)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS medlabel_reject_change()")


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0002_agreementresult_reviewpolicy_panelvote"),
        ("annotation", "0003_alter_case_status"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
