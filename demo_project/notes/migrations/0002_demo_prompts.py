"""
Create the demo's three prompts, each with one active version and its
evaluators, unless settings.NOTES_DEMO_PROMPTS is False (the test settings).
"""

from django.conf import settings
from django.db import migrations

MOODS = ["happy", "sad", "angry", "calm", "anxious"]

# Few-shot examples: the 135M-parameter model follows them far better than
# an instruction alone.
MOOD_EXAMPLES = [
    ("We won the final, best night ever!", "happy"),
    ("I miss my grandmother so much.", "sad"),
    ("Someone scratched my car and drove off!", "angry"),
    ("Tea in the garden, birds singing.", "calm"),
    ("My heart races before the interview.", "anxious"),
]

PROMPTS = [
    {
        "name": "note-mood",
        "description": "Label a note's mood; the label is stored on the note.",
        "version": {
            "system": (
                "Reply with the mood of the note: happy, sad, angry, calm or "
                "anxious. One word."
            ),
            "messages": [
                message
                for text, mood in MOOD_EXAMPLES
                for message in (
                    {"role": "user", "content": f"Note: {text}"},
                    {"role": "assistant", "content": mood},
                )
            ],
            "template": "Note: {{ note }}",
            "max_new_tokens": 4,
            "stop": ["\n", ".", ","],
            "evaluators": [
                {"name": "mood_label", "type": "one_of", "labels": MOODS},
                {"name": "finished", "type": "finish_reason", "allowed": ["stop"]},
            ],
        },
    },
    {
        "name": "note-summary",
        "description": "Summarise a note; the summary stays on the page.",
        "version": {
            "system": "You summarise private notes in one or two short sentences.",
            "template": "Summarise this note:\n\n{{ note }}",
            "max_new_tokens": 80,
            "evaluators": [
                {"name": "summary_words", "type": "word_count", "max": 60},
                {
                    "name": "reads_as_summary",
                    "type": "embedding_similarity",
                    "reference": "A short summary of a personal note.",
                    "min": 0.1,
                },
                {"name": "finished", "type": "finish_reason", "allowed": ["stop"]},
            ],
        },
    },
    {
        "name": "note-chat",
        "description": "Answer a chat message; the answer stays on the page.",
        "version": {
            "system": "You are a helpful assistant. Answer briefly.",
            "template": "{{ message }}",
            "max_new_tokens": 128,
            "evaluators": [
                {"name": "finished", "type": "finish_reason", "allowed": ["stop"]},
                {"name": "decode_speed", "type": "tokens_per_second", "min": 5},
            ],
        },
    },
]


def create_demo_prompts(apps):
    """
    Create the prompts that do not exist yet.
    """
    Prompt = apps.get_model("django_offload", "Prompt")
    PromptVersion = apps.get_model("django_offload", "PromptVersion")
    for spec in PROMPTS:
        prompt, created = Prompt.objects.get_or_create(
            name=spec["name"], defaults={"description": spec["description"]}
        )
        if created:
            PromptVersion.objects.create(
                prompt=prompt, number=1, is_active=True, **spec["version"]
            )


def create_prompts(apps, schema_editor):
    if getattr(settings, "NOTES_DEMO_PROMPTS", True):
        create_demo_prompts(apps)


def delete_prompts(apps, schema_editor):
    Prompt = apps.get_model("django_offload", "Prompt")
    Prompt.objects.filter(name__in=[spec["name"] for spec in PROMPTS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notes", "0001_initial"),
        ("django_offload", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_prompts, delete_prompts)]
