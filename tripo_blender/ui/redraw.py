"""Redraw of the sidebar regions where the Tripo panels live (used by the timer and the
operators; kept apart so neither imports the other)."""

from __future__ import annotations


def redraw_tripo_panels(context) -> None:
    wm = context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":  # the sidebar, where our panels live
                        region.tag_redraw()
