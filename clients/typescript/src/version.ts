/** The package's version: the portal's (one version for the server and its clients). */
export const VERSION = "0.1.0";
