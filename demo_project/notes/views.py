"""
Views of the notes demo. Notes are private. "Summarise" and the chat run on
the user's device with page delivery, so the server never receives their
text. "Detect mood" uses server delivery and stores the label on the note.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from demo_project.notes.models import MOODS, Note
from django_offload.decorators import offloaded
from django_offload.results import Result

MAX_CHAT_CHARS = 2000


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ["title", "body"]


def home(request: HttpRequest) -> HttpResponse:
    """
    List the user's notes and create new ones; ask visitors to sign in.
    """
    if not request.user.is_authenticated:
        return render(request, "notes/welcome.html")
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        note = form.save(commit=False)
        note.owner = request.user
        note.save()
        return redirect("notes:detail", pk=note.pk)
    notes = Note.objects.filter(owner=request.user)
    return render(request, "notes/home.html", {"form": form, "notes": notes})


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    """
    Show one note with its AI features.
    """
    note = get_object_or_404(Note, pk=pk, owner=request.user)
    return render(request, "notes/detail.html", {"note": note, "moods": MOODS})


@offloaded(prompt="note-summary", deliver="page")
def summarise(request: HttpRequest, pk: int) -> dict[str, Any]:
    """
    Return the note's text for the summary prompt; the summary stays on the
    page.
    """
    note = get_object_or_404(Note, pk=pk, owner=request.user)
    return {"note": note.body}


@offloaded(prompt="note-mood", timeout=60)
def detect_mood(request: HttpRequest, pk: int) -> dict[str, Any]:
    """
    Return the note's text for the mood prompt.
    """
    note = get_object_or_404(Note, pk=pk, owner=request.user)
    return {"note": note.body}


@detect_mood.on_result
def store_mood(request: HttpRequest, result: Result, pk: int) -> HttpResponse:
    """
    Store the label when the model's output is one of MOODS.
    """
    answer = (result.output or "").strip().strip(".!").lower()
    mood = answer if answer in MOODS else ""
    if mood:
        Note.objects.filter(pk=pk, owner=request.user).update(mood=mood)
    return JsonResponse(
        {
            "mood": mood or None,
            "task_id": result.task_id,
            "fallback": result.fallback,
            "scores": result.scores,
        }
    )


@offloaded(prompt="note-chat", deliver="page")
def chat(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """
    Return the chat message for the chat prompt; the reply stays on the page.
    """
    message = request.POST.get("message", "").strip()
    if not message or len(message) > MAX_CHAT_CHARS:
        return JsonResponse(
            {"error": f"message must have 1 to {MAX_CHAT_CHARS} characters"},
            status=400,
        )
    return {"message": message}
