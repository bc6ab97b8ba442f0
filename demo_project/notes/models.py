"""
The demo's data: private notes, each visible to its owner only.
"""

from django.conf import settings
from django.db import models

# Labels the mood prompt may answer with; anything else is not stored.
MOODS = ("happy", "sad", "angry", "calm", "anxious")


class Note(models.Model):
    """
    A private note. ``mood`` is filled by the "Detect mood" feature.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    title = models.CharField(max_length=200)
    body = models.TextField()
    mood = models.CharField(
        max_length=20, blank=True, choices=[(mood, mood) for mood in MOODS]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title
