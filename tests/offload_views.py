"""
Decorated views used by the orchestration tests.
"""

from django.http import HttpResponse, JsonResponse

from django_offload.decorators import offloaded


@offloaded(prompt="mood")
def mood_sync(request):
    return {"note": request.POST["note"]}


@offloaded(prompt="mood")
async def mood_async(request):
    return {"note": request.POST["note"]}


@offloaded(prompt="mood", deliver="page")
def mood_page_sync(request):
    return {"note": request.POST["note"]}


@offloaded(prompt="mood", deliver="page")
async def mood_page_async(request):
    return {"note": request.POST["note"]}


@offloaded(prompt="mood", fallback="error")
def mood_or_error(request):
    return {"note": request.POST["note"]}


@offloaded(prompt="mood")
def mood_hooked(request):
    if "note" not in request.POST:
        return JsonResponse({"error": "note missing"}, status=400)
    return {"note": request.POST["note"]}


@mood_hooked.on_result
def mood_hooked_result(request, result):
    return HttpResponse(result.output.upper(), content_type="text/plain")


@offloaded(prompt="mood")
def mood_wrong_variables(request):
    return {"note": "x", "extra": "y"}
