"""Draft holds (API.md, "Draft holds"): each partnership's draftHoldMinutes, and when a Draft order's
hold ends."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channel_manager', '0010_tombstone_housekeeping'),
    ]

    operations = [
        migrations.AddField(
            model_name='order',
            name='hold_expires_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='holdExpiresAt'),
        ),
        migrations.AddField(
            model_name='partner',
            name='draft_hold_minutes',
            field=models.PositiveIntegerField(default=1440, help_text='How long a Draft order of this partner holds its capacity before it expires, in minutes; 0 means never. A change applies to holds that start after it.', validators=[django.core.validators.MaxValueValidator(525600)], verbose_name='draftHoldMinutes'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(condition=models.Q(('hold_expires_at__isnull', False), ('status', 'Draft')), fields=['hold_expires_at'], name='order_hold_due'),
        ),
        migrations.AddConstraint(
            model_name='partner',
            constraint=models.CheckConstraint(condition=models.Q(('draft_hold_minutes__lte', 525600)), name='partner_draft_hold_bounded'),
        ),
    ]
