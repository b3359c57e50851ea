"""Django views of the download API: routing and HTTP only; the logic is in web_downloads.

The views are CSRF-exempt because the API is for programs, not forms; what stands in for
the token is that a create request must be ``application/json`` (see
:func:`examples.web_downloads.parse_json_object`). Settings are read per request, so
``override_settings`` works in tests.
"""

from collections.abc import Mapping
from typing import Callable

from django.conf import settings as django_settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from examples import web_downloads

Operation = Callable[[web_downloads.Settings], web_downloads.Reply]


def _dispatch(request: HttpRequest, handlers: Mapping[str, Operation]) -> JsonResponse:
    """Run the handler of the request's method with the current settings; JSON 405 otherwise."""
    handler = handlers.get(request.method or "")
    if handler is None:
        response = JsonResponse({"error": f"method {request.method} is not allowed here"}, status=405)
        response["Allow"] = ", ".join(handlers)
        return response
    reply = web_downloads.call(
        lambda: handler(web_downloads.Settings.from_mapping(django_settings.ARIA2_SYNC))
    )
    return JsonResponse(reply.body, status=reply.status)


def _body(request: HttpRequest) -> bytes:
    """The raw body; Django refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE (a 413 here)."""
    try:
        return request.body
    except RequestDataTooBig:
        raise web_downloads.ApiError(413, "the request body is too large") from None


@csrf_exempt
def batches(request: HttpRequest) -> JsonResponse:
    return _dispatch(
        request,
        {"POST": lambda s: web_downloads.create_batch(s, _body(request), request.content_type)},
    )


@csrf_exempt
def batch(request: HttpRequest, batch_id: str) -> JsonResponse:
    return _dispatch(
        request,
        {
            "GET": lambda s: web_downloads.batch_progress(s, batch_id),
            "DELETE": lambda s: web_downloads.cancel_batch(s, batch_id),
        },
    )


@csrf_exempt
def batch_retry(request: HttpRequest, batch_id: str) -> JsonResponse:
    return _dispatch(request, {"POST": lambda s: web_downloads.retry_batch(s, batch_id)})
