"""Client of the v20 Configuration API (XAPI, OData v4 under /xapi/v1); answers keep v20's PascalCase keys."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import quote as percent_encode

import requests

from gateway.pbx import odata
from gateway.pbx.auth import TokenSource
from gateway.pbx.errors import PbxNotFound, PbxRejected
from gateway.pbx.http import AuthorizedHttp, json_body

logger = logging.getLogger(__name__)

PAGE_SIZE = 100        # 20.0.8 answered $top above 100 with 400 on /Users (V20-API-NOTES §0)
CALL_LOG_PAGE_SIZE = 500   # the call history report accepts 500 (V20-API-NOTES §i)
MAX_PAGES = 1000       # a PBX that ignored $skip would otherwise page forever
VERSION_HEADER = "X-3CX-Version"

Names = str | Iterable[str] | None
Rows = list[dict[str, Any]]


def encode_query(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """A query string for OData options, spaces as %20 and quotes, parentheses and commas kept readable."""
    pairs = params.items() if isinstance(params, Mapping) else params
    return "&".join(percent_encode(str(key), safe="$") + "=" + percent_encode(_text(value), safe="'(),:/")
                    for key, value in pairs if value is not None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def names(value: Names) -> str | None:
    """`$select`/`$expand`/`$orderby` value: a string as given, a list joined by commas, None kept."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


class XapiClient:
    """XAPI requests through the shared token; raises only gateway.pbx.errors."""

    def __init__(self, session: requests.Session, base_url: str, tokens: TokenSource, *,
                 timeout_s: float) -> None:
        self._http = AuthorizedHttp(session, base_url, "/xapi/v1", tokens, timeout_s=timeout_s)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `path` relative to /xapi/v1 (e.g. "/Users(12)"); the parsed JSON answer."""
        path = _absolute(path)
        response = self._http.send("GET", path, query=encode_query(params or {}))
        return json_body(response, f"GET /xapi/v1{path}")

    def list(self, entity_set: str, *, filter: str | None = None, select: Names = None,
             expand: Names = None, orderby: Names = None, top: int | None = None) -> list[dict[str, Any]]:
        """Every entity of `entity_set` matching `filter`, fetched in pages of $top=100&$skip=n.

        `top` limits the total number returned. Build `filter` with gateway.pbx.odata.
        """
        path = _absolute(entity_set)
        options = [("$filter", filter), ("$select", names(select)), ("$expand", names(expand)),
                   ("$orderby", names(orderby))]
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            wanted = PAGE_SIZE if top is None else min(PAGE_SIZE, top - len(items))
            if wanted <= 0:
                return items
            query = encode_query(options + [("$top", wanted), ("$skip", len(items))])
            page = _values(json_body(self._http.send("GET", path, query=query), f"GET /xapi/v1{path}"), path)
            items.extend(page)
            if len(page) != wanted:
                # A short page is the last one; a longer one means the PBX ignored $top and sent all.
                return items
        logger.warning("GET /xapi/v1%s: stopped after %s pages of %s", path, MAX_PAGES, PAGE_SIZE)
        return items

    def find(self, entity_set: str, number: str, *, select: Names = None, expand: Names = None) -> dict[str, Any]:
        """The entity of `entity_set` whose Number is `number`; PbxNotFound when there is none.

        `$filter=Number eq '...'` works on every v20 build, unlike the by-number key or function.
        """
        found = self.list(entity_set, filter=odata.eq("Number", str(number)), select=select,
                          expand=expand, top=1)
        if not found:
            raise PbxNotFound(f"/xapi/v1{_absolute(entity_set)}: no entry with Number {number!r}")
        return found[0]

    def post(self, path: str, body: Any) -> dict[str, Any] | None:
        """POST `body` as JSON; the created entity or action result, None for an empty answer."""
        path = _absolute(path)
        result: dict[str, Any] | None = json_body(self._http.send("POST", path, body=body), f"POST /xapi/v1{path}")
        return result

    def patch(self, path: str, body: Mapping[str, Any]) -> None:
        """PATCH the given fields (whole values; collections replace the old ones)."""
        self._http.send("PATCH", _absolute(path), body=dict(body))

    def delete(self, path: str) -> None:
        """DELETE the entity at `path`."""
        self._http.send("DELETE", _absolute(path))

    def download(self, path: str) -> bytes:
        """The raw bytes at `path`, e.g. "/Recordings/Pbx.DownloadRecording(recId=123)" (a WAV)."""
        return self._http.send("GET", _absolute(path), accept="*/*").content

    def call_log(self, since: datetime, until: datetime, *,
                 page_size: int = CALL_LOG_PAGE_SIZE) -> Rows:
        """Every row of v20's call history report for calls that started in [since, until].

        `GET /ReportCallLogData/Pbx.GetCallLogData(periodFrom=…Z,…)` paged with `$orderby=StartTime asc`
        `&$skip=n&$top=page_size`, the parameters as real clients send them (V20-API-NOTES §i): the
        period in UTC with `Z` (another offset was reported refused), every filter off, calls chosen
        by the period only (one client saw paging applied before `$filter` on this function). Rows
        are the PBX's own dicts; gateway.live.history reads them. Needs the System Owner role:
        without it the PBX answers 403 (PbxRejected).
        """
        path = ("/ReportCallLogData/Pbx.GetCallLogData("
                f"periodFrom={_utc(since)},periodTo={_utc(until)},sourceType=0,sourceFilter='',"
                "destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,"
                "callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)")
        encoded = percent_encode(path, safe="/'(),:=.")
        rows: Rows = []
        for _ in range(MAX_PAGES):
            query = encode_query([("$orderby", "StartTime asc"), ("$skip", len(rows)), ("$top", page_size)])
            page = _values(json_body(self._http.send("GET", encoded, query=query), "GET /xapi/v1/ReportCallLogData"),
                           "/ReportCallLogData")
            rows.extend(page)
            if len(page) < page_size:
                return rows
        logger.warning("call history: stopped after %s pages of %s rows", MAX_PAGES, page_size)
        return rows

    def version(self) -> str:
        """The PBX build ("20.0.3.6") from the X-3CX-Version header of the cheap Defs probe; "" if absent."""
        response = self._http.send("GET", "/Defs", query=encode_query({"$select": "Id"}))
        return response.headers.get(VERSION_HEADER, "").strip()


def _utc(moment: datetime) -> str:
    """A date-time as the call history wants it: UTC, milliseconds, `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _absolute(path: str) -> str:
    return "/" + path.lstrip("/")


def _values(body: Any, path: str) -> list[dict[str, Any]]:
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list):
        raise PbxRejected(200, f"GET /xapi/v1{path}: the answer holds no 'value' list")
    return values
