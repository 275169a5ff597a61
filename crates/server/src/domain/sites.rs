//! Sites where people may check in from a phone, and whether a position is inside one.

use crate::domain::users::Invalid;
use crate::store::sites::{SiteFields, SiteRecord};

/// The mean radius of the Earth, in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Smaller circles than this are below what phone positioning can tell apart.
pub const MIN_RADIUS_M: f64 = 10.0;
pub const MAX_RADIUS_M: f64 = 10_000.0;
const MAX_NAME_CHARS: usize = 100;

/// A position on the Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub latitude: f64,
    pub longitude: f64,
}

impl Position {
    /// A position with both coordinates in range.
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, Invalid> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(Invalid::new("latitude", "must be between -90 and 90 degrees"));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(Invalid::new("longitude", "must be between -180 and 180 degrees"));
        }
        Ok(Self { latitude, longitude })
    }

    /// The great-circle distance to `other` in metres (haversine formula).
    pub fn distance_m(self, other: Position) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.longitude - self.longitude).to_radians();
        let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }
}

/// A site's fields from a request, checked: a name, a position and a radius in range.
pub fn site_fields(name: &str, latitude: f64, longitude: f64, radius_m: f64) -> Result<SiteFields, Invalid> {
    let name = crate::domain::users::parse_text("name", name, MAX_NAME_CHARS)?;
    if name.is_empty() {
        return Err(Invalid::new("name", "is required"));
    }
    let position = Position::new(latitude, longitude)?;
    if !(MIN_RADIUS_M..=MAX_RADIUS_M).contains(&radius_m) {
        return Err(Invalid::new("radius_m", format!("must be between {MIN_RADIUS_M} and {MAX_RADIUS_M} metres")));
    }
    Ok(SiteFields { name, latitude: position.latitude, longitude: position.longitude, radius_m })
}

/// The site `position` is in (the nearest, when circles overlap), with the distance to its
/// centre.
pub fn site_at(sites: &[SiteRecord], position: Position) -> Option<(&SiteRecord, f64)> {
    sites
        .iter()
        .map(|site| (site, position.distance_m(Position { latitude: site.latitude, longitude: site.longitude })))
        .filter(|(site, distance)| *distance <= site.radius_m)
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_known_ones() {
        // New York City Hall to the Empire State Building: about 4.3 km.
        let city_hall = Position::new(40.7128, -74.0060).unwrap();
        let empire_state = Position::new(40.7484, -73.9857).unwrap();
        assert!((city_hall.distance_m(empire_state) - 4_312.0).abs() < 20.0, "{}", city_hall.distance_m(empire_state));
        // One degree of latitude is about 111.2 km anywhere.
        let north = Position::new(41.7128, -74.0060).unwrap();
        assert!((city_hall.distance_m(north) - 111_195.0).abs() < 10.0);
        assert_eq!(city_hall.distance_m(city_hall), 0.0);
        assert!(Position::new(91.0, 0.0).is_err() && Position::new(0.0, -180.5).is_err());
    }

    #[test]
    fn a_position_is_in_the_nearest_site_whose_circle_holds_it() {
        let site = |id, latitude, radius_m| SiteRecord {
            id,
            name: format!("site {id}"),
            latitude,
            longitude: 0.0,
            radius_m,
            created_at: chrono::Utc::now(),
        };
        // 0.001° of latitude is about 111 m.
        let sites = [site(1, 0.0, 200.0), site(2, 0.001, 50.0), site(3, 0.01, 100.0)];
        let (found, distance) = site_at(&sites, Position::new(0.0009, 0.0).unwrap()).unwrap();
        assert_eq!(found.id, 2, "inside both 1 and 2, nearer 2's centre");
        assert!((distance - 11.1).abs() < 0.5, "{distance}");
        assert!(site_at(&sites, Position::new(0.005, 0.0).unwrap()).is_none());
    }
}
