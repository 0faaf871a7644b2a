"""Tags of agents, locations, tasks and executions (at most 50 per resource)."""

from __future__ import annotations

from api.listing import page
from api.resources.base import (
    Resources,
    _invalid,
)
from contract import Doc

__all__ = ["TagHandlers"]


class TagHandlers(Resources):
    # tags -------------------------------------------------------------------------------------
    def _taggable(self, arn: str) -> None:
        if "/execution/" in arn:
            self._execution(arn)
            return
        kind = arn.split(":")[-1].split("/")[0]
        if kind not in ("agent", "location", "task") or self.store.get(kind, arn) is None:
            raise _invalid(f"Resource {arn} is not found.", "ResourceNotFound")

    def tag_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        if len(set(self.store.tags(p["ResourceArn"])) | {t["Key"] for t in p["Tags"]}) > 50:
            raise _invalid("A resource can have at most 50 tags.", "TooManyTags")
        self._tag(p["ResourceArn"], p["Tags"])
        return {}

    def untag_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        self.store.remove_tags(p["ResourceArn"], p["Keys"])
        return {}

    def list_tags_for_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        tags = [{"Key": k, "Value": v} for k, v in self.store.tags(p["ResourceArn"]).items()]
        items, token = page(tags, "Key", p)
        return {"Tags": items, "NextToken": token}
