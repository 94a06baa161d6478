"""`ingressctl migrate check`: what changes for each ingress-nginx Ingress if ingressctl serves it.

`export.read_export` turns raw objects (a `kubectl get ... -o yaml` export, a directory, a
cluster) into typed objects plus the ingress-nginx controller's arguments; `check.check`
judges every Ingress of the ingress-nginx class with the webhook's own `Validator`, run as
if ingressctl had taken over that class; `report` prints text or JSON.

Design choice: "same / differs / refused" comes from the code that will serve the traffic
(the admission checks and the build), not from a second list of rules; the only hand-kept
tables say what ingress-nginx does where ingressctl knowingly differs.
"""
