from django.contrib import admin


class HitlAdminSite(admin.AdminSite):
    site_header = "HITL Portal"
    site_title = "HITL Portal"
    index_title = "Review queue"
    enable_nav_sidebar = True
