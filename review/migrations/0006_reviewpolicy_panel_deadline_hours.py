from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0005_policy_shape_average_ai_third_opinion"),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewpolicy",
            name="panel_deadline_hours",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
