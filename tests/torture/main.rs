//! Torture suite (being written): crashes, full disks, hostile HTTP, slow and abundant clients.
