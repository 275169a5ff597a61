//! Boxes and points in image coordinates (pixels, origin top-left).

use serde::{Deserialize, Serialize};

/// An axis-aligned box in image coordinates (pixels): top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl BoundingBox {
    /// Area in square pixels (0 for degenerate boxes).
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// Intersection over union with another box, in [0, 1].
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.width).min(other.x + other.width);
        let y1 = (self.y + self.height).min(other.y + other.height);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Whether the point lies inside the box (edges included).
    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x && p.y >= self.y && p.x <= self.x + self.width && p.y <= self.y + self.height
    }
}

/// A point in image coordinates (pixels).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal position.
    pub x: f32,
    /// Vertical position.
    pub y: f32,
}

/// YuNet's five landmarks, named from the subject's point of view as YuNet orders them:
/// right eye, left eye, nose tip, right mouth corner, left mouth corner.
///
/// The subject's right eye appears on the left of a non-mirrored photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Landmarks {
    /// Subject's right eye (image left).
    pub right_eye: Point,
    /// Subject's left eye (image right).
    pub left_eye: Point,
    /// Nose tip.
    pub nose: Point,
    /// Subject's right mouth corner.
    pub right_mouth: Point,
    /// Subject's left mouth corner.
    pub left_mouth: Point,
}

impl Landmarks {
    /// The five points in YuNet's order.
    pub fn points(&self) -> [Point; 5] {
        [self.right_eye, self.left_eye, self.nose, self.right_mouth, self.left_mouth]
    }

    /// Builds landmarks from five points in YuNet's order.
    pub fn from_points(p: [Point; 5]) -> Self {
        Self { right_eye: p[0], left_eye: p[1], nose: p[2], right_mouth: p[3], left_mouth: p[4] }
    }

    /// Distance between the eye centres in pixels.
    pub fn inter_eye_distance(&self) -> f32 {
        (self.left_eye.x - self.right_eye.x).hypot(self.left_eye.y - self.right_eye.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_disjoint_is_zero() {
        let a = BoundingBox { x: 0.0, y: 0.0, width: 10.0, height: 10.0 };
        let b = BoundingBox { x: 20.0, ..a };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&b), 0.0);
        let c = BoundingBox { x: 5.0, ..a };
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-6);
    }
}
