// The Braid Android library (AAR): the Kotlin layer, the generated bindings, and
// libbraid_ffi.so per ABI in src/main/jniLibs (put there by `cargo xtask android`).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "io.braid"
    compileSdk = 35

    defaultConfig {
        minSdk = 23
        consumerProguardFiles("consumer-rules.pro")
    }

    buildTypes {
        release {
            // The app's R8 run applies consumer-rules.pro; the library itself ships unshrunk.
            isMinifyEnabled = false
        }
    }

    sourceSets["main"].java.srcDir("src/main/kotlin")

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    kotlinOptions {
        jvmTarget = "11"
    }

    packaging {
        jniLibs {
            // Stored uncompressed and page-aligned in the APK: loaded in place, and the .so
            // files are linked with 16 KB segment alignment for Android 15+ devices.
            useLegacyPackaging = false
        }
    }
}

dependencies {
    // The AAR build of JNA carries libjnidispatch.so for every Android ABI.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // Flow and suspend functions are part of the public API.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
