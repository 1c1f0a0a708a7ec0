"""Redfish error bodies with messages of DMTF's Base message registry.

Message texts, severities and resolutions are copied from ``Base.1.22.1.json`` (DMTF Redfish-Publications,
release 2025.4, the release of the CSDL in ``shared/data/redfish/csdl``). An error response (DSP0266 "Error
responses") is ``{"error": {"code", "message", "@Message.ExtendedInfo": [Message, ...]}}`` with ``code`` the
MessageId of the first message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

REGISTRY = "Base.1.22.1"

# MessageId -> (Message with %n args, MessageSeverity, Resolution)
BASE: dict[str, tuple[str, str, str]] = {
    "GeneralError": (
        "A general error has occurred.  See Resolution for information on how to resolve the error, or "
        "@Message.ExtendedInfo if Resolution is not provided.",
        "Critical",
        "None.",
    ),
    "EmptyJSON": (
        "The request body submitted contained an empty JSON object and the service is unable to process it.",
        "Warning",
        "Add properties in the JSON object and resubmit the request.",
    ),
    "NoOperation": (
        "The request body submitted contain no data to act upon and no changes to the resource took place.",
        "Warning",
        "Add properties in the JSON object and resubmit the request.",
    ),
    "PropertyDuplicate": (
        "The property %1 was duplicated in the request.",
        "Warning",
        "Remove the duplicate property from the request body and resubmit the request if the operation failed.",
    ),
    "PropertyUnknown": (
        "The property %1 is not in the list of valid properties for the resource.",
        "Warning",
        "Remove the unknown property from the request body and resubmit the request if the operation failed.",
    ),
    "PropertyValueTypeError": (
        "The value '%1' for the property %2 is not a type that the property can accept.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if the operation failed.",
    ),
    "PropertyValueNotInList": (
        "The value '%1' for the property %2 is not in the list of acceptable values.",
        "Warning",
        "Choose a value from the enumeration list that the implementation can support and resubmit the request "
        "if the operation failed.",
    ),
    "PropertyValueOutOfRange": (
        "The value '%1' for the property %2 is not in the supported range of acceptable values.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if the operation failed.",
    ),
    "PropertyNotWritable": (
        "The property %1 is a read-only property and cannot be assigned a value.",
        "Warning",
        "Remove the property from the request body and resubmit the request if the operation failed.",
    ),
    "PropertyMissing": (
        "The property %1 is a required property and must be included in the request.",
        "Warning",
        "Ensure that the property is in the request body and has a valid value and resubmit the request if the "
        "operation failed.",
    ),
    "MalformedJSON": (
        "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
        "Critical",
        "Ensure that the request body is valid JSON and resubmit the request.",
    ),
    "QueryNotSupported": (
        "Querying is not supported by the implementation.",
        "Warning",
        "Remove the query parameters and resubmit the request if the operation failed.",
    ),
    "SessionLimitExceeded": (
        "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the "
        "implementation.",
        "Critical",
        "Reduce the number of other sessions before trying to establish the session or increase the limit of "
        "simultaneous sessions, if supported.",
    ),
    "ResourceNotFound": (
        "The requested resource of type %1 named '%2' was not found.",
        "Critical",
        "Provide a valid resource identifier and resubmit the request.",
    ),
    "PayloadTooLarge": (
        "The supplied payload exceeds the maximum size supported by the service.",
        "Critical",
        "Check that the supplied payload is correct and supported by this service.",
    ),
    "NoValidSession": (
        "There is no valid session established with the implementation.",
        "Critical",
        "Establish a session before attempting any operations.",
    ),
    "InsufficientPrivilege": (
        "There are insufficient privileges for the account or credentials associated with the current session to "
        "perform the requested operation.",
        "Critical",
        "Either abandon the operation or change the associated access rights and resubmit the request if the "
        "operation failed.",
    ),
    "InternalError": (
        "The request failed due to an internal service error.  The service is still operational.",
        "Critical",
        "Resubmit the request.  If the problem persists, consider resetting the service.",
    ),
    "ResourceAtUriUnauthorized": (
        "While accessing the resource at '%1', the service received an authorization error '%2'.",
        "Critical",
        "Ensure that the appropriate access is provided for the service in order for it to access the URI.",
    ),
    "PreconditionFailed": (
        "The ETag supplied did not match the ETag required to change this resource.",
        "Critical",
        "Try the operation again using the appropriate ETag.",
    ),
    "HeaderInvalid": ("Header '%1' is invalid.", "Critical", "Resubmit the request with a valid request header."),
    "OperationNotAllowed": ("The HTTP method is not allowed on this resource.", "Critical", "None."),
    "SessionTerminated": ("The session was successfully terminated.", "OK", "None."),
}


@dataclass(frozen=True)
class Message:
    """One Base registry message with its arguments and the JSON pointer of the property it is about."""

    id: str
    args: tuple[str, ...] = ()
    prop: str | None = None
    resolution: str | None = None  # a service-defined resolution (GeneralError), else the registry's

    def json(self) -> dict:
        text, severity, resolution = BASE[self.id]
        for i, a in enumerate(self.args, 1):
            text = text.replace(f"%{i}", a)
        out = {
            "@odata.type": "#Message.v1_3_0.Message",
            "MessageId": f"{REGISTRY}.{self.id}",
            "Message": text,
            "MessageArgs": list(self.args),
            "MessageSeverity": severity,
            "Resolution": self.resolution or resolution,
        }
        if self.prop:
            out["RelatedProperties"] = [self.prop]
        return out


def error_body(*messages: Message) -> dict:
    """A Redfish error response body; ``code`` and ``message`` from the first message."""
    first = messages[0].json()
    return {
        "error": {
            "code": first["MessageId"],
            "message": first["Message"],
            "@Message.ExtendedInfo": [m.json() for m in messages],
        }
    }


def value_arg(value: object) -> str:
    """A property value as a message argument (numbers as text, null as ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


__all__ = ["BASE", "REGISTRY", "Message", "error_body", "value_arg"]
