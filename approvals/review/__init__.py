"""The reviewer portal's pages inside the admin: queue helpers, review page, decisions."""
