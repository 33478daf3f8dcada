from django.db import migrations

from config.append_only import install_append_only, uninstall_append_only

TABLES = ["inference_modelversionevent", "inference_casescore"]


class Migration(migrations.Migration):
    dependencies = [("inference", "0001_initial"), ("review", "0003_append_only_triggers")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: install_append_only(schema_editor, TABLES),
            lambda apps, schema_editor: uninstall_append_only(schema_editor, TABLES),
        )
    ]
