"""The services that run tasks, behind one seam.

``provider`` is the seam (the ``Provider`` base class the job engine talks to); ``tripo_v3`` and
``aistudio`` implement it for Tripo's own API and for 3D AI Studio, sharing the
create-and-retry loop of ``create``. ``http`` (sessions, proxies,
retries) and ``download`` (streamed, resumable-safe downloads) are what both use on the wire.
``capabilities`` says which provider offers what, ``settings`` resolves the connection settings and
makes the provider, and ``settings_store`` keeps those settings on disk across updates.
"""
