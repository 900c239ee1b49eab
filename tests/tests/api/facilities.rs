//! Facilities (sites), their staff, and staff limited to some sites.
