"""The gateway component (a package only so that its tests are named gateway.tests.*)."""
