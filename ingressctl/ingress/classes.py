"""IngressClass selection: which Ingresses this controller serves.

Order of precedence, as Kubernetes defines it: `spec.ingressClassName` (it names an
IngressClass whose `spec.controller` must be ours), then the legacy
`kubernetes.io/ingress.class` annotation (compared with our class name), then the default
IngressClass (`ingressclass.kubernetes.io/is-default-class: "true"`) when exactly one exists,
then `--watch-ingress-without-class`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..objects import Ingress, IngressClass

CONTROLLER_NAME = "ingressctl.io/ingress-controller"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True)
class ClassFilter:
    controller: str = CONTROLLER_NAME
    ingress_class: str = "nginx"  # name matched by the legacy annotation
    watch_without_class: bool = False

    def is_ours(self, ing: Ingress, classes: Mapping[str, IngressClass]) -> bool:
        if ing.class_name is not None:
            cls = classes.get(ing.class_name)
            return cls is not None and cls.controller == self.controller
        legacy = ing.meta.annotations.get(LEGACY_CLASS_ANNOTATION)
        if legacy is not None:
            return legacy == self.ingress_class
        defaults = [c for c in classes.values() if c.is_default]
        if len(defaults) == 1:
            return defaults[0].controller == self.controller
        return self.watch_without_class

    def why_not(self, ing: Ingress, classes: Mapping[str, IngressClass]) -> str:
        """A one-line reason an Ingress is not ours (for `validate` and the webhook)."""
        if ing.class_name is not None:
            cls = classes.get(ing.class_name)
            if cls is None:
                return f"IngressClass {ing.class_name!r} does not exist"
            return f"IngressClass {ing.class_name!r} belongs to controller {cls.controller!r}"
        legacy = ing.meta.annotations.get(LEGACY_CLASS_ANNOTATION)
        if legacy is not None:
            return f"annotation {LEGACY_CLASS_ANNOTATION}={legacy!r} is not {self.ingress_class!r}"
        return "no class set, no single default IngressClass of ours, and --watch-ingress-without-class is off"
