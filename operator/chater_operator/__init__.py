"""The ChaterGpt operator: one custom resource runs and heals a chater-gpt instance.

Layers (each module has one job):
  spec       CR spec dict -> validated `InstanceSpec` (pure)
  render     `InstanceSpec` -> child manifests (pure)
  drift      does a live object differ from its rendered manifest? (pure)
  status     conditions and status from what happened (pure)
  kube       the `KubeApi` Protocol the reconciler talks to, and its errors
  client     the aiohttp implementation of `KubeApi` (server-side apply)
  reconcile  one pass: validate, check Secrets, apply, prune, report
  handlers   kopf wiring: create/update/resume, drift timer, finalizer
"""

GROUP = "chater.example.com"
VERSION = "v1"
PLURAL = "chatergpts"
KIND = "ChaterGpt"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "chater-operator"
